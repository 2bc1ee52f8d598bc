"""
RPC handlers for the demo server (C{scripts/demo}).

Passed to the C{rpc} service as a package (C{--rpc-handlers
examples.demo_rpc}): every public function of every submodule becomes a
method named C{"<submodule>.<function>"}, so C{demo.py}'s C{add} is called as
C{"demo.add"}.
"""
