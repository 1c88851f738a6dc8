"""Quick Start, API Docs, Available Models and Pricing pages."""
