"""
A Flask app with Flask-Session's Redis backend, for
tests/test_session_interop.py: it shares its sessions with Prism.

    REDIS_URL=redis://127.0.0.1:6379 SECRET=... SIGNED=1 PREFIX=session: python flask_app.py

Prints "listening <port>" once it accepts connections.
    POST /login  (user=<name>)   logs in: session["user"] = name
    GET  /value                  {"user": session["user"], "value": session["value"]}
    POST /value  (value=<text>)  session["value"] = text
"""

import os
import sys

import redis
from flask import Flask, jsonify, request, session
from flask_session import Session
from werkzeug.serving import make_server

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["SECRET"],
    SESSION_TYPE="redis",
    SESSION_REDIS=redis.Redis.from_url(os.environ["REDIS_URL"]),
    SESSION_KEY_PREFIX=os.environ.get("PREFIX", "session:"),
    SESSION_USE_SIGNER=os.environ.get("SIGNED", "1") == "1",
)
Session(app)


@app.post("/login")
def login():
    session["user"] = request.form["user"]
    return jsonify(ok=True, user=session["user"])


@app.get("/value")
def value():
    return jsonify(user=session.get("user"), value=session.get("value"))


@app.post("/value")
def setValue():
    session["value"] = request.form["value"]
    return jsonify(ok=True)


if __name__ == "__main__":
    server = make_server("127.0.0.1", int(os.environ.get("PORT", "0")), app, threaded=True)
    print("listening {}".format(server.server_port), flush=True)
    sys.stdout.flush()
    server.serve_forever()
