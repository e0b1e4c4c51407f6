"""Who is asking and what they may do: users, tokens, sessions, roles and permissions."""
