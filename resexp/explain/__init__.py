"""Why it works: `resexp describe` (size and cost), `resexp gradients` (gradients at init),
`resexp lesion` (trained nets with blocks deleted), `resexp landscape` (the loss around trained weights)
and `resexp paths` (the gradient by path length through a trained ResNet)."""
