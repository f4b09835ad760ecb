"""OpenAI wire types. Request types validate what the seed API documents; every
field the gateway does not route on is forwarded from the original bytes, so these
types never need to be re-encoded."""
