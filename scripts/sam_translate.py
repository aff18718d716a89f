#!/usr/bin/env python3
"""Prints what the SAM translator makes of a SAM template, offline: the JSON the `Safeshift` macro receives, and
the FILE `safeshift transform --template FILE` reads.

    python3 -m pip install aws-sam-translator   # or use the Python that came with the SAM CLI
    AWS_DEFAULT_REGION=us-east-1 python3 scripts/sam_translate.py template.yaml > sam-output.json
    safeshift transform --template sam-output.json

Local CodeUri paths are replaced by a placeholder S3 location (what `sam package` would do); the translator
makes no AWS call. Managed policy names (in Policies) are left unresolved.
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """Resolving managed policy names would call IAM; the macro does not need them."""

    def load(self):
        return {}


def packaged(template):
    """What `sam package` hands CloudFormation: local code paths replaced by S3 locations."""
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri", "."), str) \
                and not str(props.get("CodeUri", ".")).startswith("s3://") and "InlineCode" not in props:
            props["CodeUri"] = "s3://bucket/code.zip"
    function_globals = template.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str) and not function_globals["CodeUri"].startswith("s3://"):
        function_globals["CodeUri"] = "s3://bucket/code.zip"
    return template


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sam_translate.py TEMPLATE")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(sys.argv[1]) as f:
        template = packaged(yaml_parse(f.read()))
    # The translator drops every transform but its own; CloudFormation hands the macro SAM's output the same way.
    json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
