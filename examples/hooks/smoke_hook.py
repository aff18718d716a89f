"""An example safeshift hook: a smoke test run before traffic moves (preTraffic) or after promotion (postTraffic).

safeshift invokes the hook with an event like:
    {"deploymentId": "orders-api-live-7-…", "functionName": "orders-api", "alias": "live",
     "stableVersion": "6", "targetVersion": "7", "phase": "preTraffic", "percent": 0.0}

Contract:
- Synchronous (no "taskToken" in the event): return normally to pass. Raise, or return
  {"status": "Failed", "message": "..."}, to fail; safeshift then rolls back and the message is the reason.
- Callback (the event carries "taskToken"): safeshift does not wait for the return value; report the result
  with Step Functions SendTaskSuccess / SendTaskFailure before the state's timeout.

Test the *target* version directly by invoking "<functionName>:<targetVersion>", so the smoke test never
depends on the alias's current weights.
"""
import json
import sys


def check(event):
    """The actual smoke test. Replace with real requests against the target version."""
    target = f"{event['functionName']}:{event['targetVersion']}"
    # e.g. boto3.client("lambda").invoke(FunctionName=target, Payload=b'{"path": "/health"}') and inspect it
    if event.get("simulateFailure"):
        return False, f"{target} health check returned 500"
    return True, f"{target} is healthy"


def handler(event, context=None):
    ok, message = check(event)
    token = event.get("taskToken")
    if token:
        import boto3  # only the callback mode needs the SDK

        sfn = boto3.client("stepfunctions")
        if ok:
            sfn.send_task_success(taskToken=token, output=json.dumps({"message": message}))
        else:
            sfn.send_task_failure(taskToken=token, error="HookFailed", cause=message)
        return {"status": "Reported"}
    if ok:
        return {"status": "Succeeded", "message": message}
    return {"status": "Failed", "message": message}


if __name__ == "__main__":
    # Lets the test suite (and you) run the hook locally: event on stdin, response on stdout.
    print(json.dumps(handler(json.load(sys.stdin))))
