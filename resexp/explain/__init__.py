"""Why it works: `resexp describe` (size and cost), `resexp gradients` (gradients at init) and
`resexp lesion` (trained nets with blocks deleted)."""
