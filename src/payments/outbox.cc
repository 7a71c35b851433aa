// Placeholder: filled by the outbox work of issue 4.
