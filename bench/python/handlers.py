"""The Python equivalents of the engine's functions, for the benchmark: each makes the same AWS calls the Rust
function makes for the benchmark's event, with boto3 clients built at import (init). They judge nothing; they
only stand for what a Python version of the engine would at least have to do."""

import boto3

lambda_client = boto3.client("lambda")
cloudwatch = boto3.client("cloudwatch")


def shift_weight(event, _context):
    """Prepare: read the alias and both versions' configuration."""
    d = event["prepare"]["input"]
    alias = lambda_client.get_alias(FunctionName=d["functionName"], Name=d["alias"])
    for version in (d["targetVersion"], alias["FunctionVersion"]):
        lambda_client.get_function_configuration(FunctionName=d["functionName"], Qualifier=version)
    return {"stableVersion": alias["FunctionVersion"], "revisionId": alias["RevisionId"]}


def check_alarms(event, _context):
    """Read the deployment's alarms; any in ALARM fails."""
    alarms = event["deployment"]["alarms"]
    found = cloudwatch.describe_alarms(AlarmNames=alarms, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    failing = [a["AlarmName"] for a in found["MetricAlarms"] if a["StateValue"] == "ALARM"]
    return {"verdict": "fail" if failing else "pass", "failing": failing}


def run_hook(event, _context):
    """Invoke the phase's hook and pass on its answer."""
    hook = event["rollout"]["deployment"]["hooks"]["preTraffic"]
    answer = lambda_client.invoke(FunctionName=hook, Payload=b"{}")
    return {"verdict": "fail" if "FunctionError" in answer else "pass"}


def rollback(event, _context):
    """Read the alias; it is already on the stable version, so there is nothing to write."""
    d = event["rollback"]["deployment"]
    alias = lambda_client.get_alias(FunctionName=d["functionName"], Name=d["alias"])
    return {"outcome": "noChange", "functionVersion": alias["FunctionVersion"]}
