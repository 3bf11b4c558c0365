"""Distributed building blocks: accounted communication, slabs and halos, spatially split physics."""
