"""The process runtime: the composition root, one function per `ticketing run` process, the
supervisor behind `ticketing serve`, and `ticketing status`."""
