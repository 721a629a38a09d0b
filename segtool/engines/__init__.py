"""Engines schedule the unit of work (segtool.job) and collect its reports; none carries a copy.

local    one input after another, or on threads; batches through batched.py
batched  the unit split at the inference call: load on threads, one call per batch, finish on threads
ray      a driver here, actors on a Ray cluster, each running the local engine over its share
stream   video frames and live streams: frames in, masks and composite videos out
"""
