"""Commands: the only way to change tickets and accounts, for every interface alike."""
