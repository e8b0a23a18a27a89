"""Output formats, one file each, registered by name (`--NAME FILE` on `run`, `report` and `history`). See
`normreg.render.outputs.OutputFormat`."""
