"""Thin rclpy nodes: parse a message, call the ROS-free core, publish. One node class per file."""
