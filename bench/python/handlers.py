"""The Python equivalents of the engine's functions, for the benchmark: each makes the same AWS calls the Rust
function makes for the benchmark's event, with the same requests, and boto3 clients built at import (init). Like
the Rust functions they need SAFESHIFT_STATE_MACHINE_ARN at init and read the event's execution back first; beyond
that they judge nothing: they only stand for what a Python version of the engine would at least have to do.

The calls, per function (bench/src/handlers.rs names them in the report and makes them bare):
  shift_weight  DescribeExecution, GetAlias, 2 x GetFunctionConfiguration, PutItem (the alias's lock)
  check_alarms  DescribeAlarms
  run_hook      DescribeExecution, Invoke
  rollback      DescribeExecution, GetAlias, DeleteItem (the alias's lock)
"""

import os
import time

import boto3

# As the Rust functions: no state machine, no start; the lock table is `<stack>-locks` beside `<stack>-rollout`.
STATE_MACHINE_ARN = os.environ["SAFESHIFT_STATE_MACHINE_ARN"]
_machine = STATE_MACHINE_ARN.rsplit(":", 1)[-1]
LOCK_TABLE = (_machine[: -len("-rollout")] if _machine.endswith("-rollout") else _machine) + "-locks"
# How long a lock lasts (safeshift_engine::guard::LOCK_SECONDS).
LOCK_SECONDS = 270_000

lambda_client = boto3.client("lambda")
cloudwatch = boto3.client("cloudwatch")
sfn = boto3.client("stepfunctions")
dynamodb = boto3.client("dynamodb")


def own_execution(arn, deployment_id):
    """Read the execution back: a running execution of this state machine, named like the deployment."""
    e = sfn.describe_execution(executionArn=arn)
    if e["stateMachineArn"] != STATE_MACHINE_ARN or e["status"] != "RUNNING" or e["name"] != deployment_id:
        raise RuntimeError(f"execution {arn} is not a running execution of deployment {deployment_id}")
    return e


def lock_key(d):
    return f"{d['functionName']}:{d['alias']}"


def shift_weight(event, _context):
    """Prepare: read the execution, the alias and both versions' configuration, then take the alias's lock."""
    p = event["prepare"]
    d = p["input"]
    own_execution(p["executionArn"], p["deploymentId"])
    alias = lambda_client.get_alias(FunctionName=d["functionName"], Name=d["alias"])
    cloudwatch.describe_alarms(AlarmNames=d["alarms"], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    for version in (d["targetVersion"], alias["FunctionVersion"]):
        lambda_client.get_function_configuration(FunctionName=d["functionName"], Qualifier=version)
    now = int(time.time())
    # Free, already this execution's (a repeated prepare), or lapsed; otherwise ConditionalCheckFailed raises.
    dynamodb.put_item(
        TableName=LOCK_TABLE,
        Item={
            "aliasKey": {"S": lock_key(d)},
            "executionArn": {"S": p["executionArn"]},
            "deploymentId": {"S": p["deploymentId"]},
            "acquiredAt": {"N": str(now)},
            "stableVersion": {"S": alias["FunctionVersion"]},
            "expiresAt": {"N": str(now + LOCK_SECONDS)},
        },
        ConditionExpression="attribute_not_exists(aliasKey) OR executionArn = :me OR expiresAt < :now",
        ExpressionAttributeValues={":me": {"S": p["executionArn"]}, ":now": {"N": str(now)}},
    )
    return {"stableVersion": alias["FunctionVersion"], "revisionId": alias["RevisionId"]}


def check_alarms(event, _context):
    """Read the deployment's alarms; any in ALARM fails."""
    alarms = event["deployment"]["alarms"]
    found = cloudwatch.describe_alarms(AlarmNames=alarms, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    failing = [a["AlarmName"] for a in found["MetricAlarms"] if a["StateValue"] == "ALARM"]
    return {"verdict": "fail" if failing else "pass", "failing": failing}


def run_hook(event, _context):
    """Read the execution, invoke the phase's hook and pass on its answer."""
    own_execution(event["executionArn"], event["rollout"]["deploymentId"])
    hook = event["rollout"]["deployment"]["hooks"]["preTraffic"]
    answer = lambda_client.invoke(FunctionName=hook, Payload=b"{}")
    return {"verdict": "fail" if "FunctionError" in answer else "pass"}


def rollback(event, _context):
    """Read the execution, its lock and the alias (already on the stable version: nothing to write), release the
    lock."""
    state, arn = event["rollback"], event["executionArn"]
    own_execution(arn, state["deploymentId"])
    d = state["deployment"]
    dynamodb.get_item(TableName=LOCK_TABLE, Key={"aliasKey": {"S": lock_key(d)}}, ConsistentRead=True)
    alias = lambda_client.get_alias(FunctionName=d["functionName"], Name=d["alias"])
    try:
        dynamodb.delete_item(
            TableName=LOCK_TABLE,
            Key={"aliasKey": {"S": lock_key(d)}},
            ConditionExpression="executionArn = :me",
            ExpressionAttributeValues={":me": {"S": arn}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        pass  # someone else's lock, or none (already released): nothing of ours to release
    return {"outcome": "alreadyStable", "functionVersion": alias["FunctionVersion"]}
