"""ebbtide: autoscaling control plane and OpenAI-compatible gateway for self-hosted LLMs."""
