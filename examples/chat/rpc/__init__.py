"""
The chat's RPC handlers, loaded as a package (C{RPCService(handlers=
"examples.chat.rpc", sessions=True)}): C{chat.py}'s functions are the
methods C{chat.join}, C{chat.nick} and C{chat.post}.
"""
