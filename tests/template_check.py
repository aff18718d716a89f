"""Checks what template.yaml promises, on the CloudFormation that SAM turns it into (offline, with samtranslator):
the state machine's substitutions match the ASL's placeholders, every permission is scoped, every trust policy is
conditioned, the reconciler is wired to the right executions, and the timeouts nest (SDK call < function < state).
Prints 'N passed, N failed'; exits 1 on a failure.
"""
import json
import os
import pathlib
import re
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
RAW = yaml_parse((ROOT / "template.yaml").read_text())
ASL_TEXT = (ROOT / "statemachine" / "rollout.asl.json").read_text()
FUNCTIONS = {"ShiftWeightFunction": "shift-weight", "CheckAlarmsFunction": "check-alarms",
             "RunHookFunction": "run-hook", "RollbackFunction": "rollback", "WatchGatesFunction": "watch-gates"}
ENGINE = ROOT / "functions" / "engine" / "src"

# The engine's timeouts in seconds, mirrored here so the ordering below reads as numbers; the_timeouts_mirror_
# the_engine checks each against the Rust source, so the mirror cannot drift.
# functions/engine/src/aws/mod.rs: every SDK call, one attempt of it, and a synchronous hook invocation.
OPERATION_TIMEOUT = 10
OPERATION_ATTEMPT_TIMEOUT = 3
HOOK_INVOKE_TIMEOUT = 870
# functions/engine/src/shift_weight.rs, ReadyWait::default(): how long prepare waits for a Pending target.
READY_WAIT = 60
# functions/engine/src/guard.rs: how long after a stop a write may still land; the reconciler waits that long.
LONGEST_WRITE = 150
# Lambda's init phase (up to 10 s on a cold start) runs outside a function's Timeout but inside its state's
# TimeoutSeconds, so a state must outlast its function's Timeout by more than this.
INIT_ALLOWANCE = 10


class NoManagedPolicies:
    """The template names no managed policies; the translator must not need IAM to resolve any."""
    def load(self):
        return {}


def packaged(template):
    """What `sam package` hands CloudFormation: local code and definition paths replaced by S3 locations."""
    t = json.loads(json.dumps(template))
    t["Globals"]["Function"]["CodeUri"] = "s3://bucket/code.zip"
    t["Resources"]["RolloutStateMachine"]["Properties"]["DefinitionUri"] = "s3://bucket/rollout.asl.json"
    return t


# The translator reads the region from the environment even when it is given; no AWS call is made.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
CFN = transform(packaged(RAW), {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
                NoManagedPolicies())
RESOURCES = CFN["Resources"]
checks = []


def check(fn):
    checks.append(fn)
    return fn


def of_type(t):
    return {k: v for k, v in RESOURCES.items() if v["Type"] == t}


@check
def substitutions_match_the_asl_placeholders():
    subs = set(RAW["Resources"]["RolloutStateMachine"]["Properties"]["DefinitionSubstitutions"])
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL_TEXT))
    assert subs == placeholders, f"template {sorted(subs)} vs ASL {sorted(placeholders)}"


@check
def functions_are_rust_on_arm64_al2023():
    glob = RAW["Globals"]["Function"]
    assert glob["Runtime"] == "provided.al2023" and glob["Architectures"] == ["arm64"], glob
    for name, binary in FUNCTIONS.items():
        meta = RAW["Resources"][name]["Metadata"]
        assert meta["BuildMethod"] == "rust-cargolambda", name
        assert meta["BuildProperties"]["Binary"] == binary, name
        assert (ROOT / "functions" / binary / "Cargo.toml").exists(), binary


@check
def the_state_machine_is_standard_and_uses_the_asl_file():
    props = RAW["Resources"]["RolloutStateMachine"]["Properties"]
    assert props["Type"] == "STANDARD"
    assert props["DefinitionUri"] == "statemachine/rollout.asl.json"


def statements(role):
    for policy in role["Properties"].get("Policies", []):
        for s in policy["PolicyDocument"]["Statement"]:
            yield policy["PolicyName"], s


def as_list(x):
    return x if isinstance(x, list) else [x]


# Actions AWS grants only on "*" (no resource-level permissions), by the policy that may hold them.
ONLY_ON_EVERYTHING = {
    "log-delivery": "logs:",
    "metrics": "cloudwatch:GetMetricData",
    "warm-up": "lambda:GetAccountSettings",
}


@check
def no_permission_is_granted_on_everything_except_what_aws_only_grants_so():
    for name, role in of_type("AWS::IAM::Role").items():
        for policy, s in statements(role):
            if "*" in as_list(s["Resource"]):
                actions = as_list(s["Action"])
                allowed = ONLY_ON_EVERYTHING.get(policy)
                assert allowed and all(a.startswith(allowed) for a in actions), (name, policy, s)
            for a in as_list(s["Action"]):
                assert not a.endswith(":*") and a != "*", (name, a)


@check
def alias_writes_are_scoped_to_the_target_functions_parameter():
    for role in ("ShiftWeightRole", "RollbackRole"):
        found = [s for _, s in statements(RESOURCES[role]) if "lambda:UpdateAlias" in as_list(s["Action"])]
        assert len(found) == 1, role
        assert "TargetFunctionArns" in json.dumps(found[0]["Resource"]), (role, found)
    assert "Default" not in RAW["Parameters"]["TargetFunctionArns"], "no default: the user names the functions"


@check
def the_gates_can_read_alarms_and_metrics():
    role = of_type("AWS::IAM::Role")["CheckAlarmsRole"]
    actions = {a for _, s in statements(role) for a in as_list(s["Action"])}
    assert {"cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData"} <= actions, actions


@check
def hooks_are_limited_to_the_prefix():
    invokes = [s for _, s in statements(RESOURCES["RunHookRole"]) if "lambda:InvokeFunction" in as_list(s["Action"])]
    assert len(invokes) == 1 and "${HookFunctionPrefix}*" in json.dumps(invokes[0]["Resource"]), invokes


@check
def the_state_machine_may_invoke_only_the_engine():
    invokes = [s for _, s in statements(RESOURCES["StateMachineRole"])
               if "lambda:InvokeFunction" in as_list(s["Action"])]
    targets = {r["Fn::GetAtt"][0] for s in invokes for r in as_list(s["Resource"])}
    assert targets == set(FUNCTIONS), targets


@check
def every_trust_policy_is_conditioned_on_this_account():
    roles = of_type("AWS::IAM::Role")
    assert len(roles) >= 5, sorted(roles)
    for name, role in roles.items():
        for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            cond = s.get("Condition", {})
            assert "aws:SourceAccount" in cond.get("StringEquals", {}), (name, s)
            if s["Principal"].get("Service") == "states.amazonaws.com":
                assert "aws:SourceArn" in cond.get("ArnLike", {}), (name, s)


def rule_targeting(function):
    """The event rule (not a schedule) that hands events to `function`."""
    rules = [r["Properties"] for r in of_type("AWS::Events::Rule").values()
             if r["Properties"]["Targets"][0].get("Arn") == {"Fn::GetAtt": [function, "Arn"]}
             and "EventPattern" in r["Properties"]]
    assert len(rules) == 1, rules
    return rules[0]


@check
def the_reconciler_hears_aborted_timed_out_and_failed_executions_of_this_state_machine():
    rules = of_type("AWS::Events::Rule")
    # The reconciler's, the watcher's, the CloudFormation answers', and (when asked for) the notifications'.
    assert sorted(rules) == ["CloudFormationFunctionRolloutEnded", "CloudFormationFunctionSweep", "NeedsAPersonRule",
                             "RollbackFunctionExecutionEnded", "WatchGatesFunctionAlarmChanged"], sorted(rules)
    rule = rule_targeting("RollbackFunction")
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert "-rollout" in json.dumps(pattern["detail"]["stateMachineArn"])
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["RollbackFunction", "Arn"]}
    assert "DeadLetterConfig" in rule["Targets"][0], "undeliverable events must not vanish"


@check
def the_watcher_hears_alarms_going_to_alarm_and_may_fail_only_this_state_machines_waits():
    rule = rule_targeting("WatchGatesFunction")
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"], pattern
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"], pattern
    assert pattern["detail"]["state"]["value"] == ["ALARM"], pattern
    assert "DeadLetterConfig" in rule["Targets"][0], "undeliverable events must not vanish"
    granted = {a: s["Resource"] for _, s in statements(RESOURCES["WatchGatesRole"]) for a in as_list(s["Action"])}
    assert "stateMachine:${AWS::StackName}-rollout" in json.dumps(granted["states:SendTaskFailure"]), granted
    assert not any(a.startswith("lambda:") for a in granted), "the watcher moves no alias and invokes nothing"


@check
def the_macro_and_the_alias_provider_are_one_function_that_hears_every_end_of_a_rollout():
    fn = RAW["Resources"]["CloudFormationFunction"]
    assert fn["Metadata"]["BuildProperties"]["Binary"] == "cloudformation"
    assert (ROOT / "functions" / "cloudformation" / "Cargo.toml").exists()
    # The macro writes this name into every alias's ServiceToken (Scope::provider_function in the engine).
    assert fn["Properties"]["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-cloudformation"}, fn["Properties"]
    assert '"{}-cloudformation"' in (ENGINE / "guard.rs").read_text()
    macro = of_type("AWS::CloudFormation::Macro")["SafeshiftMacro"]["Properties"]
    assert macro["FunctionName"] == {"Fn::GetAtt": ["CloudFormationFunction", "Arn"]}, macro
    assert macro["Name"] == {"Ref": "MacroName"} and RAW["Parameters"]["MacroName"]["Default"] == "Safeshift"
    rule = rule_targeting("CloudFormationFunction")
    pattern = rule["EventPattern"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT"], pattern
    assert "-rollout" in json.dumps(pattern["detail"]["stateMachineArn"])
    assert "DeadLetterConfig" in rule["Targets"][0], "undeliverable events must not vanish"
    # The second path for a lost end event: the sweep.
    sweep = RESOURCES["CloudFormationFunctionSweep"]["Properties"]
    assert sweep["ScheduleExpression"].startswith("rate(") and sweep["Targets"][0]["Arn"] == {
        "Fn::GetAtt": ["CloudFormationFunction", "Arn"]}, sweep
    granted = {a: s["Resource"] for _, s in statements(RESOURCES["CloudFormationRole"]) for a in as_list(s["Action"])}
    for write in ("lambda:CreateAlias", "lambda:DeleteAlias", "lambda:UpdateAlias"):
        assert "TargetFunctionArns" in json.dumps(granted[write]), (write, granted[write])
    assert "stateMachine:${AWS::StackName}-rollout" in json.dumps(granted["states:StartExecution"])
    # GetFunction returns the stack-id tag only with ListTags (the ownership check reads it).
    assert "TargetFunctionArns" in json.dumps(granted["lambda:ListTags"]), granted["lambda:ListTags"]
    assert not any(a.startswith("lambda:Invoke") for a in granted), "it invokes nothing"
    writes = [s for _, s in statements(RESOURCES["CloudFormationRole"]) if "dynamodb:PutItem" in as_list(s["Action"])]
    assert len(writes) == 1 and writes[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == ["answer#*"], \
        "it writes its own answers only, never a lock"


@check
def lifecycle_events_go_to_the_bus_and_only_what_needs_a_person_is_forwarded():
    for role in ["ShiftWeightRole", "CheckAlarmsRole", "RunHookRole", "RollbackRole"]:
        granted = {a: s["Resource"] for _, s in statements(RESOURCES[role]) for a in as_list(s["Action"])}
        assert "event-bus/${EventBusName}" in json.dumps(granted["events:PutEvents"]), (role, granted)
    assert CFN["Resources"]["ShiftWeightFunction"]["Properties"]["Environment"]["Variables"]["SAFESHIFT_EVENT_BUS"] \
        == {"Ref": "EventBusName"}
    rule = RESOURCES["NeedsAPersonRule"]
    assert rule["Condition"] == "NotifiesPeople"
    pattern = rule["Properties"]["EventPattern"]
    assert pattern == {"source": ["safeshift"],
                       "detail-type": ["Deployment Rolled Back", "Approval Pending", "Rollback Failed"]}, pattern
    # Off by default, and no secret in the template's text: the webhook URL is NoEcho, its token resolved.
    params = RAW["Parameters"]
    assert params["NotificationTopicArn"]["Default"] == "" and params["ChatWebhookUrl"]["Default"] == ""
    assert params["ChatWebhookUrl"]["NoEcho"] is True
    key = RESOURCES["ChatWebhookConnection"]["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyValue"]
    assert "resolve:secretsmanager" in json.dumps(key), key
    assert RESOURCES["NotificationTopic"]["Condition"] == "CreateTopic"


@check
def every_log_group_has_a_retention():
    groups = of_type("AWS::Logs::LogGroup")
    assert len(groups) == 7, sorted(groups)
    for name, g in groups.items():
        assert g["Properties"].get("RetentionInDays"), name


def function_timeouts():
    """Each engine function's Timeout as deployed (SAM has merged the Globals into each function)."""
    return {name: RESOURCES[name]["Properties"]["Timeout"] for name in FUNCTIONS}


def invocations():
    """(state, TimeoutSeconds, function) for every Task of the ASL, by the substitution its Resource (or, for a
    .waitForTaskToken integration, its FunctionName) names."""
    subs = RAW["Resources"]["RolloutStateMachine"]["Properties"]["DefinitionSubstitutions"]
    found = []
    for state, s in json.loads(ASL_TEXT)["States"].items():
        if s["Type"] != "Task":
            continue
        ref = s["Resource"] if s["Resource"].startswith("${") else s.get("Parameters", {}).get("FunctionName", "")
        placeholder = re.fullmatch(r"\$\{(\w+)\}", ref)
        assert placeholder, f"{state} invokes {s['Resource']!r}, which is none of the engine's functions"
        # A watched wait times out after its bake (TimeoutSecondsPath, at least 1 s): its function only registers
        # the wait and writes no alias, so it may outlast a short bake. Count it with no bound of its own.
        found.append((state, s.get("TimeoutSeconds", float("inf")), subs[placeholder[1]]["Fn::GetAtt"][0]))
    return found


@check
def every_function_times_out_before_every_state_that_invokes_it():
    # A function still running when its state times out can write after the rollback has read the alias.
    timeouts = function_timeouts()
    late = [f"{function}'s Timeout {timeouts[function]} s (+ {INIT_ALLOWANCE} s of init) does not end before "
            f"{state}'s TimeoutSeconds {state_timeout} s"
            for state, state_timeout, function in invocations()
            if timeouts[function] + INIT_ALLOWANCE >= state_timeout]
    assert not late, "; ".join(late)
    seen = {function for _, _, function in invocations()}
    assert seen == set(FUNCTIONS), f"no state invokes {set(FUNCTIONS) - seen}"


@check
def every_sdk_call_ends_before_its_function():
    timeouts = function_timeouts()
    assert OPERATION_ATTEMPT_TIMEOUT <= OPERATION_TIMEOUT, (OPERATION_ATTEMPT_TIMEOUT, OPERATION_TIMEOUT)
    shortest = min(timeouts, key=timeouts.get)
    assert OPERATION_TIMEOUT < timeouts[shortest], (
        f"an SDK call may take {OPERATION_TIMEOUT} s, {shortest}'s Timeout is {timeouts[shortest]} s")
    assert HOOK_INVOKE_TIMEOUT < timeouts["RunHookFunction"], (
        f"a hook invocation may take {HOOK_INVOKE_TIMEOUT} s, run-hook's Timeout is {timeouts['RunHookFunction']} s")


@check
def prepare_waits_for_a_pending_target_within_its_function():
    # The execution's read-back, GetAlias, the wait, the last poll (which may start at the deadline), the stable
    # version's read, and the lock: the conditional put, the holder's read, its execution's, the take-over.
    worst = READY_WAIT + 7 * OPERATION_TIMEOUT
    timeout = function_timeouts()["ShiftWeightFunction"]
    assert worst < timeout, f"prepare may take {worst} s, shift-weight's Timeout is {timeout} s"


@check
def the_timeouts_mirror_the_engine():
    source = (ENGINE / "aws" / "mod.rs").read_text()
    consts = {name: int(secs) for name, secs in
              re.findall(r"pub const (\w+): Duration = Duration::from_secs\((\d+)\);", source)}
    mirror = {"OPERATION_TIMEOUT": OPERATION_TIMEOUT, "OPERATION_ATTEMPT_TIMEOUT": OPERATION_ATTEMPT_TIMEOUT,
              "HOOK_INVOKE_TIMEOUT": HOOK_INVOKE_TIMEOUT}
    assert consts == mirror, f"aws/mod.rs has {consts}, this check mirrors {mirror}"
    longest = re.search(r"pub const LONGEST_WRITE: Duration = Duration::from_secs\((\d+)\);",
                        (ENGINE / "guard.rs").read_text())
    assert longest and int(longest[1]) == LONGEST_WRITE, f"guard.rs waits {longest and longest[1]} s for late writes"
    wait = re.search(r"impl Default for ReadyWait \{.*?timeout: Duration::from_secs\((\d+)\)",
                     (ENGINE / "shift_weight.rs").read_text(), re.DOTALL)
    assert wait and int(wait[1]) == READY_WAIT, f"ReadyWait::default() waits {wait and wait[1]} s, not {READY_WAIT}"


@check
def the_reconciler_outlasts_the_longest_write():
    # A write started before a stop lands at the latest when shift-weight times out; the reconciler waits that
    # long after the stop, then reads the alias, may revert it, and releases and marks (four more calls).
    timeouts = function_timeouts()
    assert LONGEST_WRITE == timeouts["ShiftWeightFunction"], (
        f"guard::LONGEST_WRITE is {LONGEST_WRITE} s, shift-weight's Timeout {timeouts['ShiftWeightFunction']} s")
    needed = LONGEST_WRITE + 4 * OPERATION_TIMEOUT
    assert needed < timeouts["RollbackFunction"], (
        f"the reconciler may need {needed} s, rollback's Timeout is {timeouts['RollbackFunction']} s")


@check
def the_operator_policy_steers_only_this_state_machine():
    policy = RESOURCES["OperatorPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    granted = {}
    for st in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            granted[action] = st["Resource"]
    steering = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:StartExecution"}
    assert steering <= set(granted), granted
    for action in steering:
        assert granted[action] == {"Ref": "RolloutStateMachine"}, (action, granted[action])
    assert "execution:${AWS::StackName}-rollout:*" in str(granted["states:StopExecution"])
    # No alias write and no wildcard: the engine's roles make every change to an alias.
    assert not any(a.startswith("lambda:") or a.startswith("dynamodb:") for a in granted), granted
    assert "*" not in granted.values()
    assert CFN["Outputs"]["OperatorPolicyArn"]["Value"] == {"Ref": "OperatorPolicy"}


@check
def outputs_give_the_state_machine_and_its_console_url():
    assert {"StateMachineArn", "StateMachineConsoleUrl"} <= set(CFN["Outputs"])


@check
def the_app_can_be_published_to_the_serverless_application_repository():
    sar = RAW["Metadata"]["AWS::ServerlessRepo::Application"]
    for key in ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SemanticVersion"):
        assert sar.get(key), key
    assert (ROOT / sar["LicenseUrl"]).exists() and (ROOT / sar["ReadmeUrl"]).exists()


failed = 0
for c in checks:
    try:
        c()
        print(f"ok     {c.__name__}")
    except AssertionError as e:
        failed += 1
        print(f"FAILED {c.__name__}: {e}")
print(f"{len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
