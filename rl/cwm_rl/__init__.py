"""GRPO for CWM: losses, rollouts, the asynchronous actor/learner loop. Nothing but the CLI imports it."""
