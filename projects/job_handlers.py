from projects import webhooks  # noqa: F401  (registers webhook.deliver)
