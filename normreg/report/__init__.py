"""The report: its model, its JSON file, and a series of reports as history."""
