"""`klong demo`: the KLong recipe in miniature (synthetic replication tasks, a scripted teacher, a small model
trained from random weights), through the real klong stages."""
