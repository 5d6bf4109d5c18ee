from pinner.cli import entry

entry()
