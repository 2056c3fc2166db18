"""What comes out: output files named and recorded in a manifest, pictures rendered, batch
runs from configs, their montages, tables and report."""
