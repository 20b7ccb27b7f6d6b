"""The read-only web dashboard of the coordinator (`--http`): a starlette app served by hypercorn on trio."""
