"""A whole cluster on this machine as separate processes: the launcher, the
zygote fork server and its client. `weft up`, the benchmark and the tests
start clusters through it."""
