"""Every PNG ebbtide draws (matplotlib, Agg), in one place: the twin's run (``twin``), ``plan compare``'s policies
against the oracle (``compare``), and ``ebbtide report``'s live pools (``report``). Imported only when a plot is
asked for, so the CLI starts without matplotlib."""
