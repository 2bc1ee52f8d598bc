// The client half of the "rpc" service: call(method, ...args) returns a
// Promise of the result; notify(method, ...args) expects no reply. For a
// per-call timeout: request([method, ...args], seconds).
(s) => ({
  call: (...a) => s.request(a),
  notify: (...a) => s.send(a),
})
