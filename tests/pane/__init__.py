"""The Integration settings pane: its views, rights and groups, the log viewer, charts, audit
and edit conflicts."""
