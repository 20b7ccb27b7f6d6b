"""What every daemon runs on besides transport: the node base (identity,
roles, `hello`, fencing epochs, discovery), logging setup and allocator
settings. `weft.bus` stays transport only."""
