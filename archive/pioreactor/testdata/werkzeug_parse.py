# Parses a captured multipart/form-data request body with Werkzeug, the
# parser Pioreactor's Flask app uses, and prints what request.files sees.
# Usage: python3 werkzeug_parse.py BODY_FILE CONTENT_TYPE
import hashlib
import json
import os
import sys

from werkzeug.formparser import parse_form_data
from werkzeug.utils import secure_filename

path, content_type = sys.argv[1], sys.argv[2]
with open(path, "rb") as body:
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(os.path.getsize(path)),
        "wsgi.input": body,
    }
    _, form, files = parse_form_data(environ)
    out = {"form": sorted(form.keys()), "files": sorted(files.keys())}
    f = files.get("archive")
    if f is not None:
        out.update(
            filename=f.filename,
            secure_filename=secure_filename(f.filename),
            mimetype=f.mimetype,
            sha256=hashlib.sha256(f.read()).hexdigest(),
        )
print(json.dumps(out, sort_keys=True))
