package reply

// words is the vocabulary of generated replies: common, mostly short English
// words, so the text reads like prose and averages close to four characters
// per token. Changing this list changes every reply; keep it fixed.
var words = [...]string{
	"the", "of", "and", "to", "in", "is", "it", "that", "for", "as",
	"with", "was", "on", "be", "at", "by", "this", "had", "not", "are",
	"but", "from", "or", "have", "an", "they", "which", "one", "you", "were",
	"all", "we", "when", "there", "can", "more", "if", "no", "out", "so",
	"what", "up", "its", "about", "into", "than", "them", "only", "other", "new",
	"some", "could", "time", "these", "two", "may", "then", "do", "first", "any",
	"my", "now", "such", "like", "our", "over", "man", "me", "even", "most",
	"made", "after", "also", "did", "many", "before", "must", "through", "back", "years",
	"where", "much", "your", "way", "well", "down", "should", "because", "each", "just",
	"those", "people", "how", "too", "little", "state", "good", "very", "make", "world",
	"still", "own", "see", "men", "work", "long", "get", "here", "between", "both",
	"life", "being", "under", "never", "day", "same", "another", "know", "while", "last",
	"might", "us", "great", "old", "year", "off", "come", "since", "against", "go",
	"came", "right", "used", "take", "three", "small", "house", "place", "water", "light",
	"system", "model", "answer", "question", "river", "stone", "field", "road", "city", "plan",
	"idea", "story", "part", "point", "case", "fact", "group", "number", "word", "line",
	"hand", "room", "mind", "form", "voice", "power", "change", "order", "reason", "sound",
	"early", "clear", "quiet", "simple", "small", "open", "free", "full", "true", "whole",
	"often", "again", "always", "later", "soon", "together", "almost", "enough", "perhaps", "rather",
	"keep", "hold", "bring", "turn", "move", "show", "find", "give", "tell", "call",
	"read", "write", "build", "carry", "follow", "begin", "learn", "watch", "wait", "listen",
	"north", "south", "morning", "evening", "winter", "summer", "garden", "window", "table", "paper",
	"signal", "window", "engine", "bridge", "harbor", "valley", "forest", "island", "market", "letter",
	"steady", "gentle", "bright", "careful", "patient", "certain", "recent", "common", "useful", "distant",
}
