"""QoS profiles of the TaskMem topics, shared by publishers and subscribers."""

from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data

CAMERA_QOS = qos_profile_sensor_data
"""Camera images: best effort, keep last 5 (the ROS convention for sensor streams)."""

CLIP_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)
"""Clips: reliable; a late subscriber does not need old clips."""

MEMORY_QOS = QoSProfile(
    depth=100, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
)
"""Memories keep the last 100 for late joiners: a store node restarted mid-stream receives what it missed."""

ADAPTER_QOS = QoSProfile(
    depth=10, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
)
"""Adapter announcements: a late joiner (the store, a restarted memorizer) receives the recent ones in order, the
last being the adapter in use."""
