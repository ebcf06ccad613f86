"""The command line: click commands (cli), what they print (console) and the job loop behind them (runner)."""
