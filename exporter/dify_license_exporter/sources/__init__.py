"""Sources observe Dify deployments; they never evaluate or render."""
