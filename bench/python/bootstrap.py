"""A Python 3 + boto3 Lambda, as the managed runtime runs one: import the handler module (which builds its boto3
client at import, as AWS recommends), then loop on the Runtime API: take the next event, call the handler, post
its result. The benchmark measures it exactly as it measures the Rust functions.

Usage: python bootstrap.py <handler name in handlers.py>   (AWS_LAMBDA_RUNTIME_API names the Runtime API)
"""

import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import handlers  # noqa: E402  (the import is the function's init, and is measured as such)

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
handler = getattr(handlers, sys.argv[1].replace("-", "_"))

while True:
    with urllib.request.urlopen(API + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    try:
        body, path = json.dumps(handler(event, None)).encode(), request_id + "/response"
    except Exception as e:  # the runtime reports a handler's exception as the invocation's error
        body = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}).encode()
        path = request_id + "/error"
    urllib.request.urlopen(urllib.request.Request(API + path, data=body, method="POST")).read()
