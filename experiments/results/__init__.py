"""The run folder: its file names, readers and writers, tables, reports and pictures."""
