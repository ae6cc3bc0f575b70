"""pfn package."""
