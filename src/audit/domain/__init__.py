"""Pure domain: events, tokens, scopes, the hash chain and the rules that validate them."""
