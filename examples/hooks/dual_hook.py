"""A pre-/post-traffic hook that serves CodeDeploy and safeshift alike, for teams moving from DeploymentPreference.

The two contracts differ:
- CodeDeploy invokes the hook with {"DeploymentId", "LifecycleEventHookExecutionId"} and ignores what it returns:
  the hook must report with codedeploy:PutLifecycleEventHookExecutionStatus (Succeeded or Failed), and the
  version under test is not in the event (this hook reads it from TARGET_FUNCTION, e.g.
  `TARGET_FUNCTION: !Ref OrdersApi.Version` in the template).
- safeshift invokes the hook with {"deploymentId", "functionName", "targetVersion", "phase", ...} and judges
  what it returns: normal return passes; an exception, or {"status": "Failed", "message": "..."}, fails the
  rollout with that message. No extra permission is needed.

So the same function can stay wired to both while a stack moves from one to the other.
"""
import json
import os
import sys


def check(target):
    """The actual test of the new version. Replace with real requests (e.g. invoke `target` with a health probe)."""
    if target.endswith(":broken"):
        return False, f"{target} health check returned 500"
    return True, f"{target} is healthy"


def handler(event, context=None, codedeploy=None):
    if "LifecycleEventHookExecutionId" in event:
        ok, message = check(os.environ.get("TARGET_FUNCTION", "unknown"))
        if codedeploy is None:
            import boto3  # only the CodeDeploy contract needs the SDK

            codedeploy = boto3.client("codedeploy")
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=event["DeploymentId"],
            lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status="Succeeded" if ok else "Failed",
        )
        return {"reported": "Succeeded" if ok else "Failed", "message": message}
    ok, message = check(f"{event['functionName']}:{event['targetVersion']}")
    return {"status": "Succeeded" if ok else "Failed", "message": message}


if __name__ == "__main__":
    # The safeshift contract locally: event on stdin, response on stdout.
    print(json.dumps(handler(json.load(sys.stdin))))
