"""The domain: contracts, parties, the state machine, verification codes, signing, evidence.

Pure Python over the models; no Flask. Each user action is one function that owns its
transaction; views and CLI commands call exactly one of them.
"""
