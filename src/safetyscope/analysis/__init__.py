"""Read-only analyses of the residual stream: probes, logit and tuned lenses."""
