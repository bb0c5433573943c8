"""The store adapter: the eventsourcing application holding every aggregate, its snapshots and
in-place erasure; used by the write side, the read side and replay, importing none of them."""
