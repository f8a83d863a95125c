"""Calendar backends, one module each, found by name (see planctl.sync.backend)."""
