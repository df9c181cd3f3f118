"""The vocabulary of `data_prep.open_audio_rules`: what a label is and the words rules label with.

- `Label`, `CATEGORIES` (what a file can be) and `NO_RULE` (the reason a file no rule names gets);
- the keyword lexicon (`LEXICON`, below) matched on the words of a file name, longest phrase
  first (`drum_tom_lo_soft` -> "tom drum"), and the drum-kit lexicon (`DRUMS`, where "hat"
  means hi-hat): `words`, `lookup`, `known`, `by_name`;
- speech labels (`speech`, `language`, `LANGUAGES`);
- the registry of package rules: `rule(*packages)` adds a function to `PACKAGE_RULES`. The rules
  themselves are in `open_audio_rules_speech`, `open_audio_rules_games` and
  `open_audio_rules_samples`; `open_audio_rules.label_package` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CATEGORIES = ("speech", "music_instrument", "environment", "animal", "music", "human_sounds", "electronic")
NO_RULE = "no labelling rule"


@dataclass(frozen=True)
class Label:
    """What one audio file is."""

    category: str
    "One of CATEGORIES."
    label: str
    "Short class name ('dog', 'snare drum', 'speech')."
    caption: str
    "A short English sentence ('a dog barks')."
    transcript: str | None = None
    "What is said (speech only, when the package records it)."
    lang: str | None = None
    "Language code of speech (as the package names it: 'en', 'pt_BR', 'zh')."


# -- lexicon ------------------------------------------------------------------------------------
# keys (comma-separated; a key of several words matches those words in a row) | category code |
# label | caption.  A=animal E=environment I=music_instrument M=music H=human_sounds X=electronic

_CODES = {"A": "animal", "E": "environment", "I": "music_instrument", "M": "music",
          "H": "human_sounds", "X": "electronic", "S": "speech"}

_GENERAL = """
dog, dogs, puppy | A | dog | a dog barks
cat, kitten, blackcat, gummy cat | A | cat | a cat meows
cow, cows, calf, mudchute cow | A | cow | a cow moos
bull | A | bull | a bull bellows
ox | A | ox | an ox lows
bison | A | bison | a bison grunts
sheep, lamb, ram | A | sheep | a sheep bleats
goat, mountaingoat, mountain goat | A | goat | a goat bleats
pig, piglet | A | pig | a pig oinks
boar, wild sow, sow, tusker | A | wild boar | a wild boar grunts
horse, foal, pony | A | horse | a horse neighs
canter, gallop, horse canter, horseman walk | A | horse gallop | a horse gallops
donkey | A | donkey | a donkey brays
zebra | A | zebra | a zebra barks
camel, dromedary | A | camel | a camel grunts
elephant | A | elephant | an elephant trumpets
lion | A | lion | a lion roars
tiger | A | tiger | a tiger growls
jaguar | A | jaguar | a jaguar growls
lynx | A | lynx | a lynx growls
bear | A | bear | a bear growls
wolf, wolves | A | wolf | a wolf howls
coyote | A | coyote | a coyote howls
fox | A | fox | a fox barks
hyena | A | hyena | a hyena laughs
monkey, little monkey | A | monkey | a monkey chatters
chimpanzee, chimp | A | chimpanzee | a chimpanzee screams
gorilla | A | gorilla | a gorilla grunts
mouse, mice | A | mouse | a mouse squeaks
hamster | A | hamster | a hamster squeaks
squirrel | A | squirrel | a squirrel chatters
rabbit | A | rabbit | a rabbit squeaks
beaver | A | beaver | a beaver grunts
ferret | A | ferret | a ferret chatters
raccoon | A | raccoon | a raccoon chitters
otter | A | otter | an otter chirps
koala | A | koala | a koala grunts
wombat | A | wombat | a wombat grunts
badger | A | badger | a badger growls
hippopotamus, hippo | A | hippopotamus | a hippopotamus grunts
rhinoceros | A | rhinoceros | a rhinoceros snorts
deer, doe, caribou | A | deer | a deer calls
stag | A | stag | a stag bellows
moose | A | moose | a moose calls
yak | A | yak | a yak grunts
bird, birds, birdy | A | bird | a bird chirps
sparrow | A | sparrow | a sparrow chirps
crow, raven | A | crow | a crow caws
owl, eagle owl | A | owl | an owl hoots
eagle | A | eagle | an eagle screeches
hawk | A | hawk | a hawk screeches
vulture | A | vulture | a vulture screeches
rooster, cockerel | A | rooster | a rooster crows
chicken, hen | A | chicken | a chicken clucks
duck, drake | A | duck | a duck quacks
goose, gander | A | goose | a goose honks
turkey | A | turkey | a turkey gobbles
seagull, gull | A | seagull | a seagull cries
cuckoo | A | cuckoo | a cuckoo calls
lark | A | lark | a lark sings
blackbird | A | blackbird | a blackbird sings
canary | A | canary | a canary sings
penguin | A | penguin | a penguin calls
heron | A | heron | a heron calls
pheasant, quail, guinea fowl, wood grouse | A | game bird | a game bird calls
quetzal | A | quetzal | a quetzal calls
pelican, stork, flamingo, albatross | A | water bird | a large water bird calls
bee, bees, beehive, bumblebee | A | bee | a bee buzzes
hornet, wasp | A | hornet | a hornet buzzes
mosquito | A | mosquito | a mosquito buzzes
fly, flies | A | fly | a fly buzzes
cricket, crickets | A | crickets | crickets chirp
grasshopper | A | grasshopper | a grasshopper chirps
moth, xanthia | A | moth | a moth flutters
beetle, cockchafer, blister beetle | A | beetle | a beetle buzzes
frog, toad | A | frog | a frog croaks
snake, python, aesculapian snake, snake basket | A | snake | a snake hisses
whale | A | whale | a whale sings
orca | A | orca | an orca calls
dolphin | A | dolphin | a dolphin clicks and whistles
sea lion, seal | A | sea lion | a sea lion barks
bat | A | bat | a bat squeaks
rain | E | rain | rain falls
thunder, lightning, lightningbolt | E | thunder | thunder rumbles
wind | E | wind | the wind blows
water, stream, river | E | water | water flows
splash | E | water splash | water splashes
droplet, water drop, drip | E | water drop | water drips
bubbling, bubbles, bubble, beerbubble, winebubble | E | bubbling | liquid bubbles
seashore, sea, waves, ocean | E | sea waves | sea waves wash ashore
fire, campfire, flames, flame | E | fire | a fire crackles
furnace | E | furnace | a furnace roars
lava | E | lava | lava bubbles
steam | E | steam | steam hisses
explosion, explode, boom, bomb | E | explosion | an explosion booms
fireworks | E | fireworks | fireworks explode
footstep, footsteps, steps | E | footsteps | footsteps
door open | E | door opening | a door opens
door close | E | door closing | a door closes
door | E | door | a door opens and closes
chest open, open chest | E | chest opening | a wooden chest creaks open
chest close | E | chest closing | a wooden chest is shut
clock, watch | E | clock | a clock ticks
break glass, glass breaking, molotov | E | glass breaking | glass shatters
glass, jar, vase | E | glass | a glass clinks
bottle | E | bottle | a bottle clinks
keyboard typing | E | keyboard typing | a key on a keyboard is pressed
scissors | E | scissors | scissors snip
hammer, hammering, geologist hammer | E | hammering | a hammer strikes
anvil, smith, toolsmith | E | anvil | a hammer strikes an anvil
saw, sawing, sawmill, benchsaw | E | saw | a saw cuts wood
woodcutting, wood chopping, harvest wood | E | wood chopping | an axe chops wood
tree falling | E | tree falling | a tree falls with a crash
drill, drillgun | E | drill | a drill whirs
pickhammer, jackhammer | E | jackhammer | a jackhammer rattles
mine, pickaxe | E | pickaxe | a pickaxe strikes rock
dig, digging, dug | E | digging | someone digs
stonecutter, stonemason, stonecutting | E | stone cutting | a chisel cuts stone
mill turning | E | mill | a mill wheel turns
weaving, weaver | E | weaving | a loom clacks
meal, ration, cooking | E | cooking | food sizzles as it cooks
kettle | E | kettle | a kettle whistles
toilet | E | toilet | a toilet flushes
washing machine | E | washing machine | a washing machine runs
vacuum cleaner | E | vacuum cleaner | a vacuum cleaner runs
camera shutter, shutterclick, camera | E | camera shutter | a camera shutter clicks
car door | E | car door | a car door slams
airplane, plane, aeroplane | E | airplane | an airplane flies past
helicopter, quadrocopter | E | helicopter | a helicopter flies past
train | E | train | a train passes
tractor, excavator | E | engine | an engine rumbles
rocket | E | rocket | a rocket engine roars
siren, firetruck | E | siren | a siren wails
gunshot, shotgunfire, thunderstick, gun | E | gunshot | a gun fires
reload, sniperreload, shotgunreload | E | gun reload | a gun is reloaded
mortar, cannon | E | cannon | a cannon fires
arrow, arrow hit | E | arrow | an arrow thuds into a target
bow | E | bow | a bow shoots an arrow
crossbow | E | crossbow | a crossbow fires
catapult | E | catapult | a catapult launches
sword | E | sword | swords clash
axe | E | axe | an axe swings and strikes
club, mace, flail, cudgel, staff | E | blunt weapon | a blunt weapon strikes
spear | E | spear | a spear thrusts
knife, dagger, throwing knife | E | knife | a blade slashes
dart | E | dart | a dart is thrown
hatchet | E | axe | an axe swings and strikes
throw, miss | E | whoosh | something whooshes through the air
sling | E | sling | a sling hurls a stone
whipcrack, whip | E | whip | a whip cracks
punch, fist | E | punch | a punch lands
whoosh, woosh, swoosh, swish, whiff | E | whoosh | something whooshes through the air
impact | E | impact | something hits hard
cave in, rumble, rockfall | E | rockfall | rocks tumble and rumble
building fall, building collapse | E | building collapse | a building collapses
falling tools | E | metal clatter | metal tools clatter
coins, gold | E | coins | coins jingle
zipper | E | zipper | a zipper is pulled
rubber duck, rubberduck | E | rubber duck | a rubber duck squeaks
cart, cart moving, wagon | E | cart | a cart rolls along
flamethrower | E | flamethrower | a flamethrower roars
blowtorch | E | blowtorch | a blowtorch hisses
parachute | E | parachute | a parachute opens
fuse, gunpowder burning | E | fuse | a fuse fizzles
extinguish, extinguish flame | E | fire extinguished | a flame is put out with a hiss
fizzle, cool lava, sizzle | E | sizzling | something sizzles
scythe | E | scythe | a scythe swishes through grass
fisher throw net, fisher pull net, net | E | fishing net | a net is thrown and hauled
till | E | cash register | a cash register rings
laughter, laugh, laughing, giggle | H | laughter | a person laughs
cheering, cheer | H | cheering | people cheer
applause | H | applause | an audience applauds
raving crowd, crowd | H | crowd | a crowd roars
scream | H | scream | a person screams
cough | H | cough | a person coughs
burp | H | burp | a person burps
breath, breathing | H | breathing | a person breathes
kiss | H | kiss | a loud kiss
groan, moan | H | groan | a person groans
ouch, ugh, ooff, ow, pain | H | pain grunt | a person grunts in pain
finger snaps, finger snap | H | finger snap | fingers snap
whistle | E | whistle | a whistle blows
sleigh bells | I | sleigh bells | sleigh bells jingle
bugle | I | bugle | a bugle call is played
sonar | X | sonar ping | an electronic sonar ping
bounce | E | ball bounce | a ball bounces
mug | E | mug | a mug is tapped
knock | E | knock | someone knocks on wood
paper, gift wrap, wrapping paper | E | paper | paper rustles
mallet | E | mallet | a mallet strikes
torch | E | torch | a burning torch whooshes
fencegate open, gate open | E | gate opening | a gate creaks open
fencegate close, gate close | E | gate closing | a gate swings shut
card shuffle | E | card shuffle | playing cards are shuffled
kick drum, bass drum, bassdrum, bd, kick | I | kick drum | a kick drum is hit
snare drum, snare, sn | I | snare drum | a snare drum is hit
rimshot, sidestick, side stick, rim click, rim | I | rimshot | a rimshot is played on a snare drum
hihat, hi hat, hi hat closed, hihat closed | I | hi-hat | a hi-hat is played
tom, toms, tomtom, floor tom | I | tom drum | a tom drum is hit
crash cymbal, cymbal crash, crash | I | crash cymbal | a crash cymbal crashes
ride cymbal, ride | I | ride cymbal | a ride cymbal is struck
splash cymbal | I | splash cymbal | a splash cymbal is struck
china cymbal, china | I | china cymbal | a china cymbal is struck
cymbal, cymbals | I | cymbal | a cymbal is struck
cowbell | I | cowbell | a cowbell is struck
hand clap, handclap, clap, claps | I | clap | hands clap a beat
tambourine | I | tambourine | a tambourine is shaken
shaker, maraca, maracas | I | maracas | maracas are shaken
claves, clave | I | claves | claves click together
woodblock, wood block | I | woodblock | a woodblock is struck
agogo | I | agogo | an agogo bell is struck
bongo | I | bongo | a bongo drum is hit
conga | I | conga | a conga drum is hit
djembe | I | djembe | a djembe is hit
cajon | I | cajon | a cajon is hit
tabla | I | tabla | a tabla is played
timpani | I | timpani | a timpani is struck
slit drum | I | slit drum | a slit drum is struck
drum kit, drumkit, drums, drum | I | drums | drums are played
percussion | I | percussion | percussion is played
triangle | I | triangle | a triangle rings
xylophone, xylofon | I | xylophone | a xylophone is played
marimba | I | marimba | a marimba is played
chimes, wind chimes | I | wind chimes | wind chimes tinkle
bell, bells | I | bell | a bell rings
gong | I | gong | a gong is struck
piano, grand piano | I | piano | a piano is played
electric piano, e piano | I | electric piano | an electric piano is played
organ, church organ, hand organ, e organ | I | organ | an organ plays
harpsichord, cembalo | I | harpsichord | a harpsichord is played
clavichord, klavichord | I | clavichord | a clavichord is played
accordion, squeezebox | I | accordion | an accordion plays
harmonica | I | harmonica | a harmonica plays
guitar, geetar, acoustic guitar, classical guitar, classguit | I | guitar | a guitar is played
electric guitar, steel guitar | I | electric guitar | an electric guitar is played
guitar chord, chord | I | guitar chord | a guitar chord is strummed
bass guitar, bassguitar, bassguitarc | I | bass guitar | a bass guitar is plucked
slap bass, bassslap | I | slap bass | a bass guitar is slapped
synth bass, bass, acid bass | I | synth bass | a synth bass note plays
ukulele | I | ukulele | a ukulele is strummed
mandolin, mandpluk | I | mandolin | a mandolin is plucked
lute | I | lute | a lute is plucked
harp | I | harp | a harp is plucked
zither | I | zither | a zither is played
violin, violins, fiddle | I | violin | a violin is played
viola, bratsche, bratschemono | I | viola | a viola is played
cello, violoncello | I | cello | a cello is played
strings | I | strings | a string section plays
flute, western concert flute | I | flute | a flute is played
recorder | I | recorder | a recorder is played
clarinet | I | clarinet | a clarinet is played
oboe | I | oboe | an oboe is played
bassoon | I | bassoon | a bassoon is played
saxophone, sax | I | saxophone | a saxophone is played
trumpet | I | trumpet | a trumpet is played
horn, natural horn, french horn | I | horn | a horn is blown
trombone | I | trombone | a trombone is played
tuba | I | tuba | a tuba is played
bagpipes | I | bagpipes | bagpipes play
kazoo | I | kazoo | a kazoo buzzes
music, song | M | music | a piece of music plays
drum loop, breakbeat, amen, break | M | drum loop | a drum loop plays
synth pad, pad, juno pad | M | synth pad | a synthesizer pad sustains
choir | M | choir | a choir sings
drone | M | drone | a droning musical tone
metronome | M | metronome | a metronome ticks
fanfare | M | fanfare | a short fanfare plays
beep, blip, bleep | X | beep | an electronic beep
laser | X | laser | a laser zap
glitch | X | glitch | a glitchy electronic sound
zap | X | zap | an electronic zap
sine, sine tone | X | sine tone | a pure sine tone
"""

# Inside drum kits "hat" is a hi-hat, "bass" a bass drum, "stick" a side stick.
_DRUMS = """
hat, hh, open hh, closed hh, pedal hh, side hh, side ohh, open hat, closed hat, pedal hat, hat open, hat closed, hat pedal | I | hi-hat | a hi-hat is played
bass, kick | I | kick drum | a kick drum is hit
stick | I | rimshot | a rimshot is played on a snare drum
tom, tom hi, tom mid, tom low, tomhi | I | tom drum | a tom drum is hit
bell | I | cymbal bell | the bell of a cymbal is struck
splash, zildjian splash | I | splash cymbal | a splash cymbal is struck
fingersnap, finger snaps, finger snap, snaps | I | finger snap | fingers snap a beat
click | I | click | a percussive click
wood | I | woodblock | a woodblock is struck
waterglass | I | water glass | a glass of water is struck like a bell
whistle | I | whistle | a whistle is blown
"""


def _parse(table: str) -> dict[str, tuple[str, str, str]]:
    index: dict[str, tuple[str, str, str]] = {}
    for line in table.strip().splitlines():
        keys, code, label, caption = (part.strip() for part in line.split("|"))
        for key in keys.split(","):
            index.setdefault(" ".join(key.split()), (_CODES[code], label, caption))
    return index


LEXICON = _parse(_GENERAL)
"phrase -> (category, label, caption); phrases are lower-case words separated by one space."
DRUMS = {**LEXICON, **_parse(_DRUMS)}
"LEXICON with the drum-kit meanings on top."


def words(name: str) -> list[str]:
    """Lower-case words of a file or folder name: camelCase, _, -, digits and dots split."""
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-zA-Z]+", name.lower()) if w]


_GENERIC = {"drums", "percussion", "music"}
"Labels that lose to a more specific word of the same length ('drum_tom' is a tom drum)."


def lookup(tokens: list[str], lexicon: dict[str, tuple[str, str, str]] = LEXICON) -> Label | None:
    """The lexicon entry of the longest phrase in `tokens` (leftmost among equals, generic last)."""
    for n in (3, 2, 1):
        hits = [h for i in range(len(tokens) - n + 1) if (h := lexicon.get(" ".join(tokens[i:i + n])))]
        if hits:
            return Label(*next((h for h in hits if h[1] not in _GENERIC), hits[0]))
    return None


def known(phrase: str) -> Label:
    """The lexicon's label of a phrase that is in it (a KeyError names a typo in a rule)."""
    return Label(*LEXICON[phrase])


def by_name(rel: str, lexicon: dict[str, tuple[str, str, str]] = LEXICON) -> Label | str:
    """Label from the file's own name, else NO_RULE."""
    return lookup(words(PurePosixPath(rel).stem), lexicon) or NO_RULE


# -- speech helpers ----------------------------------------------------------------------------

LANGUAGES = {
    "ach": "Acholi", "af": "Afrikaans", "am": "Amharic", "an": "Aragonese", "ar": "Arabic",
    "ast": "Asturian", "az": "Azerbaijani", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali",
    "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician", "gu": "Gujarati", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ka": "Georgian", "km": "Khmer",
    "kn": "Kannada", "ko": "Korean", "ku": "Kurdish", "lt": "Lithuanian", "lv": "Latvian",
    "mk": "Macedonian", "ml": "Malayalam", "mr": "Marathi", "ms": "Malay", "nb": "Norwegian",
    "nds": "Low German", "nl": "Dutch", "nn": "Norwegian", "oc": "Occitan", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian",
    "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "ta": "Tamil", "te": "Telugu",
    "th": "Thai", "tn": "Tswana", "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese",
    "wa": "Walloon", "zh": "Chinese",
}


def language(code: str) -> str:
    """English name of a language code ('pt_BR' -> 'Portuguese'); the code if unknown."""
    return LANGUAGES.get(re.split(r"[_@.-]", code.lower())[0], code)


def speech(transcript: str | None, lang: str, voice: str = "a voice", verb: str = "says") -> Label:
    """A speech label; the caption quotes the transcript when there is one."""
    where = f" in {language(lang)}"
    if transcript:
        return Label("speech", "speech", f'{voice} {verb}{where}: "{transcript}"', transcript, lang)
    return Label("speech", "speech", f"{voice} speaks{where}", None, lang)


# -- package rules -----------------------------------------------------------------------------

Rule = Callable[[Path, list[str]], dict[str, "Label | str"]]
PACKAGE_RULES: dict[str, Rule] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for name in names:
            PACKAGE_RULES[name] = fn
        return fn
    return register

