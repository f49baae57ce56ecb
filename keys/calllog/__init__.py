"""Storing logged calls' documents: the keys app's call log, whatever API the calls came through.

- writer: one upsert per logged call, committed before its answer leaves, and the up-front
  reservation of a caller's document id (unique across keys and processes);
- spool: the rows the database refused, kept in files and replayed (`replay_api_call_spool`).

The guard (keys/guard/bookkeeping.py) writes here through keys.services; CHQ's wire format
(keys/chqapi/) reads and completes the same rows, and this package never imports it.
"""
