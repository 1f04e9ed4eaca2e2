"""Sandboxes (docker, bubblewrap), agent tools, tasks and rewards. Imports nothing of ours but cwm_common."""
