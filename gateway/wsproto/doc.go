// Package wsproto reads client messages and encodes server frames as RFC 6455
// requires, on top of the header codec of github.com/gobwas/ws.
//
// The Reader enforces every rule a server must check on what a client sends
// (masking, reserved bits and opcodes, control frame limits, fragmentation
// order, UTF-8 in text messages and close reasons, close codes, message size)
// and reports a violation as a *CloseError carrying the close code to send.
// The encoders build unmasked server frames in one allocation, so a frame can
// be built once and handed to many clients.
package wsproto
