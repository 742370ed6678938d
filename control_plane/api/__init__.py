"""HTTP views of the control plane (thin: parse, call one domain function, render)."""
