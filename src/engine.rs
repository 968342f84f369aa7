//! The only module that knows both sides: observe the server and the Maildir, load the
//! base, plan, then apply each action under the intent journal. Not built yet (issue 5).
