"""HTTP only: parse the request, authorise, call `hver.core`, render the Hub's wire format."""
