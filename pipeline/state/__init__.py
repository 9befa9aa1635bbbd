"""State: the only code that talks to Redis. One Lua script per state transition."""
