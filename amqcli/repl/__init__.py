"""The interactive shell (``amq shell``): prompt-toolkit around the same command tree as
the command line. Imported only when the shell starts."""
