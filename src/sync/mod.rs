//! The pure sync planner: given what the server has, what the Maildir has and what both
//! had at the last sync, decide what to do. No IO, no clock (time is an argument).
