"""One interpreter per Keras backend for the tests: runs the snippets ``backendrun`` sends it.

Started by :mod:`backendrun` with ``KERAS_BACKEND`` set, it imports Keras once and then reads
snippets (one JSON string per line) from stdin. Each runs in a fresh namespace with its prints
captured; the reply, one JSON line on the file descriptor given as the only argument, carries the
captured output or the traceback. Between snippets the environment variables, the working
directory and Keras's global state (session, float type, dtype policy) are put back as they were,
so a snippet sees what it would see in a new interpreter, less the import time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


def main() -> None:
    reply = os.fdopen(int(sys.argv[1]), "w")
    import keras  # the backend is fixed here, for every snippet

    for line in sys.stdin:
        code = json.loads(line)
        environ, cwd = dict(os.environ), os.getcwd()
        captured, error = io.StringIO(), None
        try:
            with contextlib.redirect_stdout(captured):
                exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
        except BaseException:  # noqa: BLE001 - a snippet's SystemExit or KeyboardInterrupt too
            error = traceback.format_exc()
        finally:
            os.environ.clear()
            os.environ.update(environ)
            os.chdir(cwd)
            keras.backend.clear_session()
            keras.config.set_floatx("float32")
            keras.config.set_dtype_policy("float32")
        reply.write(json.dumps({"stdout": captured.getvalue(), "error": error}) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
